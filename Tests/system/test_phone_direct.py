"""Direct mode in namespaces the test creates: on an open network the phone registers
straight at the lab gatekeeper and opens no tunnel; behind a MASQUERADE NAT the
gatekeeper rejects it (RRJ) and the phone falls back to the tunnel, where a call carries
its tone both ways (checked by ToneDetector); the decision is remembered per network."""
import subprocess

import pytest

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
        assert "summary: path tunnel over TCP" in out
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
