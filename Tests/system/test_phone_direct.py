"""Direct mode in namespaces the test creates: on an open network the phone registers
straight at the lab gatekeeper and opens no tunnel; behind a MASQUERADE NAT the
gatekeeper rejects it (RRJ) and the phone falls back to the tunnel, where a call carries
its tone both ways (checked by ToneDetector); the decision is remembered per network."""
import subprocess

import pytest

from test_mirror import lab  # noqa: F401  (fixture)
from tunnel_fixtures import SECRETS, pki  # noqa: F401  (fixture)

CREDENTIALS = ["--alias", "alice", "--secret", SECRETS["alice"].decode()]


def veth(a, a_if, a_addr, b, b_if, b_addr):
    subprocess.run(["ip", "link", "add", a_if, "netns", a.name, "type", "veth", "peer", "name", b_if,
                    "netns", b.name], check=True)
    for ns, ifname, addr in ((a, a_if, a_addr), (b, b_if, b_addr)):
        ns.run("ip", "addr", "add", addr, "dev", ifname)
        ns.run("ip", "link", "set", ifname, "up")


def start(ns, bloo, *args, ready):
    process = ns.popen(str(bloo), *args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    if not line.startswith(ready):
        process.kill()
        raise AssertionError(f"{args[0]} did not start: {line!r}")
    return process


def stop(*processes):
    for p in processes:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def phone(ns, bloo, *args, timeout=90):
    return ns.run(str(bloo), "phone", *args, check=False, timeout=timeout)


def test_open_network_registers_directly_and_opens_no_tunnel(bloo, pki, netns, tmp_path):
    server_ns, phone_ns = netns("srv"), netns("phone")
    veth(phone_ns, "vp0", "10.232.0.2/24", server_ns, "vs0", "10.232.0.1/24")
    gatekeeper = start(server_ns, bloo, "lab", "gatekeeper", "--ras", "10.232.0.1:1719", "--reject-nat",
                       ready="ready lab-gatekeeper")
    terminator = start(server_ns, bloo, "tunnel-serve", "--tls", "off", "--tcp", "10.232.0.1:8443",
                       "--subscribers", str(pki["subscribers"]), ready="ready")
    state = tmp_path / "phone-state"
    try:
        result = phone(phone_ns, bloo, "register", *CREDENTIALS, "--gatekeeper", "10.232.0.1:1719",
                       "--appliances", "tcp:10.232.0.1:8443", "--state", str(state), "--duration", "3")
        out = result.stdout
        assert result.returncode == 0, out
        assert "registered alice (direct to the gatekeeper 10.232.0.1:1719)" in out
        assert "confirmed the registration (RCF)" in out
        assert "connecting to" not in out and "tunnel open" not in out
        assert state.read_text().startswith("10.232.0.2 none direct ")  # on-link, no default gateway
    finally:
        stop(gatekeeper, terminator)


def test_nat_rejected_falls_back_to_the_tunnel_with_audio_both_ways(bloo, pki, netns, tmp_path):
    phone_ns, router_ns, server_ns = netns("phone"), netns("nat"), netns("srv")
    veth(phone_ns, "vp0", "10.233.0.2/24", router_ns, "vr0", "10.233.0.1/24")
    veth(router_ns, "vr1", "10.234.0.1/24", server_ns, "vs0", "10.234.0.2/24")
    phone_ns.run("ip", "route", "add", "default", "via", "10.233.0.1")
    router_ns.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    router_ns.run("iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "vr1", "-j", "MASQUERADE")
    gatekeeper = start(server_ns, bloo, "lab", "gatekeeper", "--ras", "10.234.0.2:1719", "--reject-nat",
                       ready="ready lab-gatekeeper")
    terminator = start(server_ns, bloo, "tunnel-serve", "--tls", "10.234.0.2:4433", "--cert", str(pki["cert"]),
                       "--key", str(pki["key"]), "--subscribers", str(pki["subscribers"]), ready="ready")
    state = tmp_path / "phone-state"
    common = [*CREDENTIALS, "--gatekeeper", "10.234.0.2:1719", "--ca", str(pki["ca"]),
              "--appliances", "tls:10.234.0.2:4433/localhost", "--state", str(state)]
    try:
        result = phone(phone_ns, bloo, "call", "echo", *common, "--tone", "1000", "--expect-tone", "1000",
                       "--duration", "3")
        out = result.stdout
        assert result.returncode == 0, out
        assert "rejected the registration (RRJ, invalidRASAddress" in out, out
        assert "falling back to the tunnel" in out
        assert "tunnel open to tls:10.234.0.2:4433/localhost" in out
        assert "summary: path tunnel with UDP audio" in out  # UDP crosses a MASQUERADE NAT
        line = next(l for l in out.splitlines() if l.startswith("tone 1000 Hz"))
        presence = int(line.split("present in ")[1].split("%")[0])
        assert presence >= 90, out
        # The NAT really rewrote the phone's address: the router counted masqueraded packets.
        counters = router_ns.run("iptables", "-t", "nat", "-L", "POSTROUTING", "-v", "-n", "-x").stdout
        assert int(next(l.split()[0] for l in counters.splitlines() if "MASQUERADE" in l)) >= 1

        # Same network next time: straight to the tunnel, and it says why.
        assert "10.233.0.2 10.233.0.1 tunnel" in state.read_text()
        again = phone(phone_ns, bloo, "register", *common, "--duration", "3")
        assert again.returncode == 0, again.stdout
        assert "needed the tunnel before" in again.stdout and "going straight to the tunnel" in again.stdout
        assert "registering directly" not in again.stdout
        assert "registered alice" in again.stdout
    finally:
        stop(gatekeeper, terminator)


def test_no_ras_answer_falls_back_after_the_retries(bloo, pki, netns, tmp_path):
    server_ns, phone_ns = netns("srv"), netns("phone")
    veth(phone_ns, "vp0", "10.235.0.2/24", server_ns, "vs0", "10.235.0.1/24")
    phone_ns.run("iptables", "-A", "OUTPUT", "-p", "udp", "--dport", "1719", "-j", "DROP")  # a firewall
    gatekeeper = start(server_ns, bloo, "lab", "gatekeeper", "--ras", "10.235.0.1:1719", ready="ready lab-gatekeeper")
    terminator = start(server_ns, bloo, "tunnel-serve", "--tls", "off", "--tcp", "10.235.0.1:8443",
                       "--subscribers", str(pki["subscribers"]), ready="ready")
    try:
        result = phone(phone_ns, bloo, "register", *CREDENTIALS, "--gatekeeper", "10.235.0.1:1719",
                       "--appliances", "tcp:10.235.0.1:8443", "--state", str(tmp_path / "s"), "--duration", "3")
        out = result.stdout
        assert result.returncode == 0, out
        assert "no RAS answer from 10.235.0.1:1719 within the H.225.0 retries" in out
        assert "registered alice (tunnel over TCP via tcp:10.235.0.1:8443)" in out
    finally:
        stop(gatekeeper, terminator)


def gateway_releases(proc, count, timeout=30.0):
    """The gateway's first `count` 'call released' lines, as dicts."""
    import re
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = re.findall(r"call released (.*)", proc.log())
        if len(found) >= count:
            return [dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line)) for line in found[:count]]
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} calls released:\n{proc.log()}")


def test_open_network_direct_call_with_tones_both_ways_and_no_tunnel(bloo, netns, tmp_path):
    from test_mirror import Proc
    oper_ns, phone_ns = netns("oper"), netns("phone")
    veth(phone_ns, "vp0", "10.237.0.2/24", oper_ns, "vo0", "10.237.0.1/24")
    gk = Proc(oper_ns, tmp_path, "gatekeeper", [str(bloo), "lab", "gatekeeper", "--ras", "10.237.0.1:1719",
                                                "--route", "0=10.237.0.1:1720"])
    gw = Proc(oper_ns, tmp_path, "gateway", [str(bloo), "lab", "gateway", "--signalling", "10.237.0.1:1720",
                                             "--tone", "2000", "--expect-tone", "1000"])
    state = tmp_path / "phone-state"
    try:
        gk.wait_for("lab gatekeeper started")
        gw.wait_for("lab gateway started")
        # The appliance listed is not even running: an open network must not need it.
        result = phone(phone_ns, bloo, "call", "0123456", *CREDENTIALS, "--gatekeeper", "10.237.0.1:1719",
                       "--appliances", "tcp:10.237.0.1:8443", "--state", str(state), "--tone", "1000",
                       "--expect-tone", "2000", "--duration", "4", "--dtmf", "7")
        out = result.stdout
        assert result.returncode == 0, out + result.stderr
        assert "registered alice (direct to the gatekeeper 10.237.0.1:1719)" in out, out
        assert "calling 0123456 directly" in out
        assert "connected (call 1), codec PCM" in out, out  # the gateway picks from PCMA, PCMU
        assert "summary: path direct" in out, out
        assert "sent DTMF 7" in out
        assert "connecting to" not in out and "tunnel open" not in out and "scan" not in out.lower(), out
        presence = int(out.split("tone 2000 Hz: present in ")[1].split("%")[0])
        assert presence >= 80, out
        at_gateway = gateway_releases(gw, 1)[0]
        assert float(at_gateway["tone_presence"]) >= 0.8, at_gateway
        assert at_gateway["digits"] == "7", at_gateway  # H.245 UserInputIndication from the phone
        # ARQ and DRQ went to the gatekeeper: the call was admitted and disengaged there.
        gk.wait_for(r"admitted")
        gk.wait_for(r"disengaged")
        assert state.read_text().startswith("10.237.0.2 none direct ")
    finally:
        gk.stop()
        gw.stop()


def test_incoming_direct_call_is_answered_with_audio(bloo, netns, tmp_path):
    from test_mirror import Proc
    oper_ns, phone_ns = netns("oper"), netns("phone")
    veth(phone_ns, "vp0", "10.238.0.2/24", oper_ns, "vo0", "10.238.0.1/24")
    gk = Proc(oper_ns, tmp_path, "gatekeeper", [str(bloo), "lab", "gatekeeper", "--ras", "10.238.0.1:1719"])
    listener = None
    caller = None
    try:
        gk.wait_for("lab gatekeeper started")
        listener = phone_ns.popen(str(bloo), "phone", "listen", *CREDENTIALS, "--gatekeeper", "10.238.0.1:1719",
                                  "--appliances", "tcp:10.238.0.1:8443", "--tone", "1000", "--expect-tone", "2000",
                                  "--duration", "20", stdout=subprocess.PIPE, text=True)
        gk.wait_for("registered endpoint=.* aliases=alice")
        caller = Proc(oper_ns, tmp_path, "caller", [str(bloo), "lab", "gateway", "--signalling", "10.238.0.1:1730",
                                                    "--gatekeeper", "10.238.0.1:1719", "--alias", "labcaller",
                                                    "--call", "alice", "--tone", "2000", "--expect-tone", "1000",
                                                    "--hangup-after", "4000", "--cause", "16"])
        at_caller = gateway_releases(caller, 1)[0]
        assert float(at_caller["tone_presence"]) >= 0.8, at_caller
    finally:
        if listener:
            listener.terminate()
            out, _ = listener.communicate(timeout=15)
        if caller:
            caller.stop()
        gk.stop()
    assert "registered alice (direct to the gatekeeper" in out, out
    assert "incoming call 2 from labcaller to alice" in out, out
    assert "call ended (call 2): the far end hung up (normal clearing)" in out, out
    assert "summary: path direct" in out
    assert "tunnel open" not in out
    presence = int(out.split("tone 2000 Hz: present in ")[1].split("%")[0])
    assert presence >= 80, out


def test_a_middlebox_that_eats_media_makes_the_phone_fall_back_and_say_why(lab, bloo):
    """Between the phone and the operator a router passes H.323 signalling (RAS on UDP
    1719, call signalling on TCP) but drops every other UDP datagram, as an H.323-unaware
    NAT or firewall does to RTP: the direct registration and the call's signalling work,
    the audio never arrives. The phone hangs up, says why, remembers that this network
    needs the tunnel, and places the call again through it (TCP passes the router)."""
    from test_mirror import APPL_OUT, NAT_IN, NAT_OUT, OPER, PHONE
    from test_phone_mirror import PHONE_ARGS
    nat, appl, oper = (lab.namespaces[n] for n in ("nat", "appl", "oper"))
    nat.run("iptables", "-t", "nat", "-F")  # routed, not translated: the gatekeeper sees the phone itself
    appl.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    appl.run("ip", "route", "add", "10.77.1.0/24", "via", NAT_OUT)
    oper.run("ip", "route", "add", "10.77.1.0/24", "via", APPL_OUT)
    for rule in (["--dport", "1719", "-j", "ACCEPT"], ["--sport", "1719", "-j", "ACCEPT"], ["-j", "DROP"]):
        nat.run("iptables", "-A", "FORWARD", "-p", "udp", *rule)
    gk, gw = lab.operator()
    lab.appliance()
    state = lab.directory / "phone-state"
    result = lab.namespaces["phone"].run(str(bloo), "phone", "call", "0123456", *PHONE_ARGS, "--gatekeeper",
                                         f"{OPER}:1719", "--state", str(state), "--tone", "1000",
                                         "--expect-tone", "2000", "--duration", "4", "--direct-media-timeout", "3",
                                         check=False, timeout=120)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert f"registered alice (direct to the gatekeeper {OPER}:1719)" in out, out
    assert "calling 0123456 directly" in out
    assert ("the direct call connected but no audio arrived within 3 s" in out
            and "lets H.323 signalling through but not the media" in out), out
    assert "falling back to the tunnel" in out
    assert "placing the call again, through the tunnel" in out
    assert "registered alice (tunnel over TCP" in out
    summaries = [l for l in out.splitlines() if l.startswith("summary: path")]
    assert summaries[0] == "summary: path direct" and summaries[-1].startswith("summary: path tunnel"), summaries
    tones = [int(l.split("present in ")[1].split("%")[0]) for l in out.splitlines() if l.startswith("tone 2000 Hz")]
    assert tones[0] == 0 and tones[-1] >= 80, out
    releases = gateway_releases(gw, 2)
    assert float(releases[1]["tone_presence"]) >= 0.8, releases
    assert f"{PHONE} {NAT_IN} tunnel the direct call connected but no audio arrived" in state.read_text()
    dropped = nat.run("iptables", "-L", "FORWARD", "-v", "-n", "-x").stdout
    assert int(next(l.split()[0] for l in dropped.splitlines() if " DROP " in l)) >= 50, dropped  # the RTP


def test_direct_registration_lost_moves_the_phone_to_the_tunnel(bloo, pki, netns, tmp_path):
    server_ns, phone_ns = netns("srv"), netns("phone")
    veth(phone_ns, "vp0", "10.239.0.2/24", server_ns, "vs0", "10.239.0.1/24")
    gatekeeper = start(server_ns, bloo, "lab", "gatekeeper", "--ras", "10.239.0.1:1719", "--ttl", "5",
                       ready="ready lab-gatekeeper")
    terminator = start(server_ns, bloo, "tunnel-serve", "--tls", "off", "--tcp", "10.239.0.1:8443",
                       "--subscribers", str(pki["subscribers"]), ready="ready")
    process = phone_ns.popen(str(bloo), "phone", "register", *CREDENTIALS, "--gatekeeper", "10.239.0.1:1719",
                             "--appliances", "tcp:10.239.0.1:8443", "--state", str(tmp_path / "state"),
                             "--duration", "40", stdout=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("registered alice (direct"):
                # A firewall comes up: the keep-alive RRQs (TTL 5 s) go unanswered.
                phone_ns.run("iptables", "-A", "OUTPUT", "-p", "udp", "--dport", "1719", "-j", "DROP")
            if line.startswith("registered alice (tunnel"):
                break
        out = "".join(lines)
        assert "registered alice (direct to the gatekeeper 10.239.0.1:1719)" in out, out
        assert "falling back to the tunnel: the direct registration was lost" in out, out
        assert "registered alice (tunnel over TCP via tcp:10.239.0.1:8443)" in out, out
    finally:
        process.terminate()
        process.wait(15)
        stop(gatekeeper, terminator)
