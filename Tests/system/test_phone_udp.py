"""The UDP upgrade of a tunnelled call's audio (docs/tunnel-protocol.md §8), in namespaces
made here.

(a) UDP open, H.323 signalling blocked: the phone, behind a MASQUERADE NAT, cannot reach the
    gatekeeper (RAS and call signalling dropped in its namespace), so it opens the tunnel;
    the appliance's mirror carries the call to the lab gateway, and the audio moves to UDP:
    the phone's path and packet counters show it, MEDIA frames stop, and the tones cross
    both ways (1 kHz heard at the gateway, 2 kHz heard by the phone).
(b) UDP blocked in the middle of a call: the audio falls back to the tunnel and the call
    goes on, with its echoed tone still heard."""
import re
import subprocess
import threading
import time

from test_mirror import OPER, SECRET, lab, released  # noqa: F401  (fixture)
from test_phone_mirror import PHONE_ARGS, route_operator_to_nat
from tunnel_fixtures import SECRETS, pki  # noqa: F401  (fixture)


def counts(out):
    m = re.search(r"summary: audio packets in the tunnel sent (\d+) received (\d+), on UDP sent (\d+) received (\d+)", out)
    assert m, out
    return [int(x) for x in m.groups()]


def test_udp_open_signalling_blocked_audio_moves_to_udp_with_tones_both_ways(lab, bloo):
    gk, gw = lab.operator()
    appliance = lab.appliance()
    route_operator_to_nat(lab)
    phone_ns = lab.namespaces["phone"]
    for rule in (["-p", "udp", "--dport", "1719"], ["-p", "tcp", "--dport", "1720"]):
        phone_ns.run("iptables", "-A", "OUTPUT", *rule, "-j", "DROP")
    result = phone_ns.run(str(bloo), "phone", "call", "0123456", *PHONE_ARGS, "--gatekeeper", f"{OPER}:1719",
                          "--state", str(lab.directory / "phone-state"), "--tone", "1000", "--expect-tone", "2000",
                          "--duration", "5", check=False, timeout=120)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert f"no RAS answer from {OPER}:1719 within the H.225.0 retries" in out, out
    assert "registered alice (tunnel over TCP" in out
    assert "the appliance offers UDP audio for call 1" in out
    assert "audio of call 1 moved to UDP: the appliance answered probe" in out
    assert "back in the tunnel" not in out
    assert "summary: path tunnel with UDP audio" in out
    tunnel_sent, tunnel_received, udp_sent, udp_received = counts(out)
    # 5 s of 20 ms packets went on UDP; only the first few, before the proof, were MEDIA frames.
    assert udp_sent >= 200 and udp_received >= 200, out
    assert tunnel_sent <= 10 and tunnel_received <= 10, out
    presence = int(re.search(r"tone 2000 Hz: present in (\d+)%", out).group(1))
    assert presence >= 80, out
    assert float(released(gw)["tone_presence"]) >= 0.8
    # The appliance saw the same: audio on UDP, no fallback, and its leg counted the packets.
    appliance.wait_for(r"tunnel-udp-audio .*alias=alice")
    closed = appliance.wait_for(r"tunnel-udp-leg-closed (.*)").group(1)
    fields = dict(re.findall(r"(\w+)=(\S+)", closed))
    assert int(fields["udp_in"]) >= 200 and int(fields["udp_out"]) >= 200, closed
    assert fields["fallbacks"] == "0", closed
    # The NAT was really crossed and the signalling really blocked.
    rules = phone_ns.run("iptables", "-L", "OUTPUT", "-v", "-n", "-x").stdout
    assert int(next(l.split()[0] for l in rules.splitlines() if "dpt:1719" in l)) >= 3, rules


def veth(a, a_if, a_addr, b, b_if, b_addr):
    subprocess.run(["ip", "link", "add", a_if, "netns", a.name, "type", "veth", "peer", "name", b_if,
                    "netns", b.name], check=True)
    for ns, ifname, addr in ((a, a_if, a_addr), (b, b_if, b_addr)):
        ns.run("ip", "addr", "add", addr, "dev", ifname)
        ns.run("ip", "link", "set", ifname, "up")


def test_udp_blocked_mid_call_falls_back_to_the_tunnel_and_the_call_goes_on(bloo, pki, netns, tmp_path):
    server_ns, phone_ns = netns("srv"), netns("phone")
    veth(phone_ns, "vp0", "10.236.0.2/24", server_ns, "vs0", "10.236.0.1/24")
    log_path = tmp_path / "terminator.log"
    with open(log_path, "w") as log:
        server = server_ns.popen(str(bloo), "tunnel-serve", "--tls", "10.236.0.1:4433", "--cert", str(pki["cert"]),
                                 "--key", str(pki["key"]), "--subscribers", str(pki["subscribers"]),
                                 "--udp-fallback-ms", "500", stdout=subprocess.PIPE, stderr=log, text=True)
    phone = None
    try:
        assert server.stdout.readline().startswith("ready tls=10.236.0.1:4433")
        phone = phone_ns.popen(str(bloo), "phone", "call", "echo", "--alias", "alice", "--secret",
                               SECRETS["alice"].decode(), "--ca", str(pki["ca"]),
                               "--appliances", "tls:10.236.0.1:4433/localhost", "--tone", "1000",
                               "--expect-tone", "1000", "--duration", "9", "--udp-fallback-ms", "500",
                               stdout=subprocess.PIPE, text=True)
        lines = []
        blocked = threading.Event()

        def block_later():
            time.sleep(3)
            phone_ns.run("iptables", "-A", "OUTPUT", "-p", "udp", "-j", "DROP")
            phone_ns.run("iptables", "-A", "INPUT", "-p", "udp", "-j", "DROP")
            blocked.set()

        for line in phone.stdout:
            lines.append(line)
            if "moved to UDP" in line and not blocked.is_set():
                threading.Thread(target=block_later, daemon=True).start()
        phone.wait(30)
        out = "".join(lines)
        assert phone.returncode == 0, out
        assert blocked.is_set(), out
        assert "audio of call 1 moved to UDP" in out, out
        assert re.search(r"audio of call 1 back in the tunnel: (nothing arrived on UDP for 500 ms|the appliance stopped hearing us on UDP)", out), out
        # The call was not dropped: it ran its 9 s and was hung up here.
        assert "call ended (call 1): hung up here" in out, out
        assert "summary: path tunnel over TCP" in out
        tunnel_sent, tunnel_received, udp_sent, udp_received = counts(out)
        assert udp_received >= 100 and tunnel_received >= 100, out  # both paths carried a good part
        duration = float(re.search(r"summary: duration (\d+\.\d) s", out).group(1))
        assert duration >= 8.5
        presence = int(re.search(r"tone 1000 Hz: present in (\d+)%", out).group(1))
        assert presence >= 75, out  # one fallback gap of about half a second in 9 s
        server.terminate()
        server.wait(10)
        log = log_path.read_text()
        assert re.search(r"tunnel-udp-fallback .*alias=alice", log), log
    finally:
        if phone and phone.poll() is None:
            phone.kill()
        if server.poll() is None:
            server.terminate()
            server.wait(10)
